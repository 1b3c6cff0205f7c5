// Validates custom resources offline against the schemas the @kubernetes-models npm packages
// publish (generated from each project's Go API types), for `cargo xtask check deploy`.
//
//   node scripts/validate-crds.mjs NODE_MODULES_DIR < objects.json
//
// stdin: a JSON array of {"source": "...", "object": {...}}. stdout: one line per problem,
// "SOURCE: KIND NAME: PATH: MESSAGE". Exit 0 when every object is valid, 1 when one is not or
// when no installed package knows its apiVersion and kind (an object nothing checked is a
// failure, not a skip), 2 on a usage error. `scripts/stack.sh tool kubernetes-models` installs
// the pinned packages and prints NODE_MODULES_DIR.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

// API group -> the package whose models validate its kinds.
const PACKAGES = {
  "keda.sh": "@kubernetes-models/keda",
  "argoproj.io": "@kubernetes-models/argo-rollouts",
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
};

// The model class of an apiVersion and kind, or a reason there is none.
async function model(modules, apiVersion, kind) {
  const [group, version] = String(apiVersion).split("/");
  const pkg = PACKAGES[group];
  if (!pkg || !version || !/^[A-Za-z0-9]+$/.test(kind)) {
    return { reason: `no validator knows ${apiVersion} ${kind} (known groups: ${Object.keys(PACKAGES).join(", ")})` };
  }
  const file = join(modules, pkg, group, version, `${kind}.js`);
  if (!existsSync(file)) {
    return { reason: `${pkg} has no model of ${apiVersion} ${kind}` };
  }
  const exported = (await import(pathToFileURL(file).href))[kind];
  return exported ? { Model: exported } : { reason: `${file} exports no ${kind}` };
}

async function main() {
  const modules = process.argv[2];
  if (!modules || !existsSync(modules)) {
    console.error("usage: node validate-crds.mjs NODE_MODULES_DIR < objects.json");
    return 2;
  }
  const items = JSON.parse(readFileSync(0, "utf8"));
  let problems = 0;
  for (const { source, object } of items) {
    const at = `${source}: ${object.kind} ${object.metadata?.name ?? "(no name)"}`;
    const { Model, reason } = await model(modules, object.apiVersion, object.kind);
    if (!Model) {
      console.log(`${at}: /: ${reason}`);
      problems++;
      continue;
    }
    try {
      new Model(object).validate();
    } catch (error) {
      const errors = Array.isArray(error.errors) ? error.errors : [{ message: String(error) }];
      for (const e of errors) {
        console.log(`${at}: ${e.instancePath || "/"}: ${e.message ?? e.keyword}`);
        problems++;
      }
    }
  }
  return problems === 0 ? 0 : 1;
}

process.exitCode = await main();
