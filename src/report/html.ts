// HTML helpers for a self-contained report. Every string that comes from data or a model is
// untrusted (a Stack Exchange post may hold <script>): it goes through escapeHtml, and JSON
// placed inside a <script> element goes through jsonForScript.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

export function escapeHtml(text: unknown): string {
  return String(text)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** JSON safe inside <script>: no '<' (so no '</script>' or '<!--'), no raw line separators. */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/** A library's JS made safe to inline in a <script> element. */
export function inlineScript(js: string, name: string): string {
  // '<!--' and '<script' inside script data switch the HTML tokenizer into escaped states where
  // '</script>' no longer ends the element; none of the vega bundles contain them, and if a future
  // version did, failing loudly beats a report that silently does not render.
  if (/<!--|<script/i.test(js)) throw new Error(`report: ${name} contains "<!--" or "<script", which cannot be inlined safely`);
  // '<\/' is the same string in JS (strings, regexes and comments), but does not close the element.
  return js.replace(/<\/(script)/gi, '<\\/$1');
}

const require = createRequire(import.meta.url);

/** The minified vega, vega-lite and vega-embed browser bundles, in load order. */
export function vegaBundles(): Array<{ name: string; js: string }> {
  return ['vega', 'vega-lite', 'vega-embed'].map((name) => ({
    name,
    js: readFileSync(path.join(packageDir(name), 'build', `${name}.min.js`), 'utf8'),
  }));
}

/** A package's root directory (vega-embed's "exports" hides its build files from require.resolve). */
function packageDir(name: string): string {
  let dir = path.dirname(require.resolve(name));
  while (dir !== path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    // The package root sits directly under node_modules (vega-lite ships a build/package.json too).
    if (path.basename(path.dirname(dir)) === 'node_modules' && existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === name) return dir;
    dir = path.dirname(dir);
  }
  throw new Error(`report: cannot find the ${name} package directory`);
}
