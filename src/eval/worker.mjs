// piscina loads workers as plain JavaScript: register tsx in this thread, then hand over to the
// TypeScript worker. Works whether or not the parent process was started with tsx.
import { register } from 'tsx/esm/api';

register();
const { default: runTask } = await import('./worker.ts');
export default runTask;
