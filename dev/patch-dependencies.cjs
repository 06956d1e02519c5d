#!/usr/bin/env node
/**
 * Fixes in installed dependencies that upstream has not released yet; run by `postinstall`, so
 * every `npm ci` (CI, the Docker image's stages, a newcomer's machine) gets them. Plain Node, no
 * dependencies: the image's production stage has none of the dev tools. Each fix names the exact
 * text it replaces, applies once, and says so when that text is gone (a new version may already
 * carry the fix: check, then delete the entry).
 *
 * postgres (porsager) 3.4.x, src/connection.js: a connection whose socket closes while a small write
 * is deferred keeps a stale `nextWriteTimer` (cleared, never nulled). On reconnect, every later small
 * write waits for a flush that is never scheduled, so that connection's queries hang for ever (a
 * transaction whose backend was terminated does this within a few tries); and a write deferred
 * after the close dereferences the null socket in a setImmediate, an uncatchable TypeError that
 * kills the process. Upstream: https://github.com/porsager/postgres/issues/1066,
 * https://github.com/porsager/postgres/issues/1154, https://github.com/porsager/postgres/issues/1208
 * (fix proposed in https://github.com/porsager/postgres/pull/1168).
 * Proved by test/integration/postgres-driver-patch.test.ts.
 */
const fs = require('node:fs');
const path = require('node:path');

const MARK = '/* conduit: dev/patch-dependencies.cjs */';

const POSTGRES_FIXES = [
  {
    what: 'nextWrite fails its queries when the socket is gone',
    from: 'function nextWrite(fn) {\n    const x = socket.write(chunk, fn)',
    // The bytes cannot be sent: the queries waiting for them fail as on any closed connection.
    to: `function nextWrite(fn) {\n    ${MARK}\n    if (!socket) {\n      chunk = nextWriteTimer = null\n      error(Errors.connection('CONNECTION_CLOSED', options, socket))\n      return false\n    }\n    const x = socket.write(chunk, fn)`,
  },
  {
    what: 'terminate() forgets the deferred write',
    from: '    clearImmediate(nextWriteTimer)\n    if (socket) {',
    to: `    clearImmediate(nextWriteTimer)\n    chunk = nextWriteTimer = null ${MARK}\n    if (socket) {`,
  },
  {
    what: 'closed() forgets the deferred write',
    from: '    clearImmediate(nextWriteTimer)\n    socket.removeListener(',
    to: `    clearImmediate(nextWriteTimer)\n    chunk = nextWriteTimer = null ${MARK}\n    socket.removeListener(`,
  },
];

/**
 * @param {string} file
 * @param {{ what: string, from: string, to: string }[]} fixes
 */
function patchFile(file, fixes) {
  if (!fs.existsSync(file)) return;
  let text = fs.readFileSync(file, 'utf8');
  if (text.includes(MARK)) return;
  for (const fix of fixes) {
    if (!text.includes(fix.from)) {
      console.warn(
        `[patch-dependencies] ${path.relative(process.cwd(), file)}: "${fix.what}" not applied: its text is not there (fixed upstream?)`,
      );
      return;
    }
  }
  for (const fix of fixes) text = text.replace(fix.from, fix.to);
  fs.writeFileSync(file, text);
  console.log(`[patch-dependencies] ${path.relative(process.cwd(), file)}: ${fixes.map((f) => f.what).join('; ')}`);
}

const root = path.resolve(__dirname, '..');
const postgresDir = path.join(root, 'node_modules', 'postgres');
// Both builds the package ships: CommonJS (what we load) and ESM.
for (const build of ['cjs/src/connection.js', 'src/connection.js']) patchFile(path.join(postgresDir, build), POSTGRES_FIXES);
