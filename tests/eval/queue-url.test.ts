// Queue URLs, password redaction and worker path mapping (no Redis needed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { queueConnection, scrub } from '../../src/eval/queue.ts';
import { validateQueueUrl } from '../../src/eval/config.ts';
import { mapPath, parsePathMap } from '../../src/eval/queue-worker.ts';

test('queue URLs: options for ioredis, a display form without the password, TLS for rediss://', () => {
  const c = queueConnection('redis://:s%40cret@10.0.0.5:6380/2', {});
  assert.deepEqual({ host: c.options.host, port: c.options.port, password: c.options.password, db: c.options.db, tls: c.options.tls }, { host: '10.0.0.5', port: 6380, password: 's@cret', db: 2, tls: undefined });
  assert.equal(c.display, 'redis://:***@10.0.0.5:6380/2');
  assert.equal(c.secret, 's@cret');
  const tls = queueConnection('rediss://eval:pw@redis.internal', {});
  assert.equal(tls.options.port, 6379);
  assert.equal(tls.options.username, 'eval');
  assert.deepEqual(tls.options.tls, { servername: 'redis.internal' });
  assert.equal(tls.display, 'rediss://eval:***@redis.internal');
  // A password left out of the URL comes from LIMA_QUEUE_PASSWORD and is hidden the same way.
  const env = queueConnection('redis://127.0.0.1:7000', { LIMA_QUEUE_PASSWORD: 'from-env' });
  assert.equal(env.options.password, 'from-env');
  assert.equal(env.display, 'redis://:***@127.0.0.1:7000');
  assert.equal(queueConnection('redis://127.0.0.1:7000', {}).display, 'redis://127.0.0.1:7000');
  assert.equal(scrub('WRONGPASS for s@cret and s%40cret', 's@cret'), 'WRONGPASS for *** and ***');
});

test('a bad queue URL is an error that does not repeat the URL', () => {
  for (const url of ['http://:hunter2@host:1', 'redis//:hunter2@host', 42]) {
    assert.throws(() => validateQueueUrl(url, 'x.json: eval.queue'), (err: Error) => {
      assert.match(err.message, /^x\.json: eval\.queue: /);
      assert.ok(!err.message.includes('hunter2'), err.message);
      return true;
    });
  }
  assert.equal(validateQueueUrl('rediss://:pw@h:1', 'q'), 'rediss://:pw@h:1');
});

test('--path-map FROM=TO maps path prefixes at directory boundaries', () => {
  const map = parsePathMap(['/shared/runs/=/mnt/runs', '/data=/d']);
  assert.equal(mapPath('/shared/runs/a/eval/onnx/1.onnx', map), '/mnt/runs/a/eval/onnx/1.onnx');
  assert.equal(mapPath('/database/x', map), '/database/x');
  assert.equal(mapPath('/data/x', map), '/d/x');
  assert.throws(() => parsePathMap(['nomap']), /--path-map "nomap": expected FROM=TO/);
});
