// Bundles the modeller (modeller/src/modeller.js) and the review diff (modeller/src/review.js)
// with esbuild into api/static/dist/, which api/static_assets.py serves from its allow-list.
// Run by `make setup` (the modeller-bundle target) after `npm ci`; the output is not committed.
//
// bpmnlint's rules reach the browser through a virtual module, `carepath-lint-config`: the
// rules bpmnlint recommends (read from bpmnlint/config/recommended.js at build time, so the
// list follows the locked bpmnlint), as warnings, plus carepath's own rules in modeller/src/lint-rules/.
import { build } from "esbuild";
import { createRequire } from "node:module";
import { readdirSync, rmSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..");
const out = join(root, "api", "static", "dist");
const require = createRequire(import.meta.url);

function lintConfigSource() {
  const recommended = require(join(root, "node_modules", "bpmnlint", "config", "recommended.js")).rules;
  const own = readdirSync(join(here, "src", "lint-rules")).filter((f) => f.endsWith(".js"));
  const lines = [];
  const rules = {};
  const cases = [];
  Object.keys(recommended).forEach((name, i) => {
    lines.push(`import r${i} from "bpmnlint/rules/${name}";`);
    // bpmnlint's rules advise (warnings); what blocks a deploy is carepath's server check, so an
    // error in the modeller's list means exactly "carepath would refuse this"
    rules[name] = recommended[name] === "off" ? "off" : "warn";
    cases.push(`"bpmnlint/${name}": r${i}`);
  });
  own.forEach((file, i) => {
    const name = file.replace(/\.js$/, "");
    lines.push(`import c${i}, { category as k${i} } from ${JSON.stringify(join(here, "src", "lint-rules", file))};`);
    cases.push(`"bpmnlint-plugin-carepath/${name}": c${i}`);
    rules[`carepath/${name}`] = `__k${i}__`;
  });
  let rulesJson = JSON.stringify(rules, null, 2);
  own.forEach((_f, i) => { rulesJson = rulesJson.replace(`"__k${i}__"`, `k${i}`); });
  return `${lines.join("\n")}
const rules = { ${cases.join(", ")} };
export const config = { rules: ${rulesJson} };
export const resolver = {
  resolveRule(pkg, name) {
    const rule = rules[pkg + "/" + name];
    if (!rule) { throw new Error("unknown lint rule " + pkg + "/" + name); }
    return rule;
  },
  resolveConfig() { throw new Error("configs are flattened at build time"); }
};
export default { config, resolver };
`;
}

const lintConfigPlugin = {
  name: "carepath-lint-config",
  setup(b) {
    b.onResolve({ filter: /^carepath-lint-config$/ }, () => ({ path: "carepath-lint-config", namespace: "lintcfg" }));
    b.onLoad({ filter: /.*/, namespace: "lintcfg" }, () => ({ contents: lintConfigSource(), resolveDir: root,
                                                             loader: "js" }));
  },
};

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { modeller: join(here, "src", "modeller.js"), review: join(here, "src", "review.js") },
  bundle: true,
  minify: true,
  sourcemap: false,
  format: "iife",
  target: ["es2020"],
  outdir: out,
  // fonts and images as files next to the CSS: the pages' CSP allows fonts only from 'self'
  loader: { ".woff": "file", ".woff2": "file", ".ttf": "file", ".eot": "file", ".svg": "file", ".png": "file" },
  assetNames: "[name]-[hash]",
  define: { "process.env.NODE_ENV": '"production"' },
  plugins: [lintConfigPlugin],
  logLevel: "warning",
});
console.log(`modeller bundle written to ${out}`);
