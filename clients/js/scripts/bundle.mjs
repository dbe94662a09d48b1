// Builds the SDK's one-file bundle (an ES module, minified) with esbuild.
//
//   node scripts/bundle.mjs                 dist/emostream-client.min.js and the viewer page's copy
//   node scripts/bundle.mjs --out FILE      only FILE (the drift test compares it with the copy)
//   node scripts/bundle.mjs --size          the bundle's size, minified and gzipped, as JSON
//
// The viewer page's copy is committed next to uPlot in the fanout's static directory, so neither
// the Python package nor the container images need node to build.

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
export const VIEWER_COPY = resolve(root, "../../src/emostream/fanout/static/emostream-client.min.js");

/** The bundle's bytes: deterministic for a given source and esbuild version. */
async function bundle() {
  const result = await build({
    entryPoints: [join(root, "src/index.ts")],
    bundle: true,
    minify: true,
    format: "esm",
    target: "es2022",
    platform: "neutral",
    write: false,
    legalComments: "none",
    banner: { js: `// ${pkg.name} ${pkg.version}: built from clients/js by scripts/bundle.mjs; do not edit.` },
  });
  return Buffer.from(result.outputFiles[0].contents);
}

function write(path, bytes) {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, bytes);
}

const args = process.argv.slice(2);
const bytes = await bundle();
if (args[0] === "--size") {
  const gzip = gzipSync(bytes, { level: 9 }).length;
  process.stdout.write(`${JSON.stringify({ minified: bytes.length, gzip })}\n`);
} else if (args[0] === "--out") {
  write(resolve(args[1]), bytes);
} else {
  write(join(root, "dist/emostream-client.min.js"), bytes);
  write(VIEWER_COPY, bytes);
}
