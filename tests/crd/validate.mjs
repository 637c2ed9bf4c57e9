// Validate Prometheus Operator custom resources offline against the CRD schemas that
// @kubernetes-models/prometheus-operator (pinned in package.json) ships.
// Input on stdin: a JSON list of objects. Output on stdout: a JSON list of
// {kind, name, errors}, errors empty when the object is valid. Exit 0 when every object is valid,
// 1 when one is not, 2 when an object has a kind this script does not know.
import { readFileSync } from "node:fs";

const MODELS = {
  "monitoring.coreos.com/v1/ServiceMonitor": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor",
  "monitoring.coreos.com/v1/PodMonitor": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor",
  "monitoring.coreos.com/v1/PrometheusRule": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule",
};

const objects = JSON.parse(readFileSync(0, "utf8"));
const results = [];
let status = 0;
for (const obj of objects) {
  const key = `${obj.apiVersion}/${obj.kind}`;
  const name = obj.metadata && obj.metadata.name;
  if (!(key in MODELS)) {
    results.push({ kind: key, name, errors: [`no schema for ${key}`] });
    status = 2;
    continue;
  }
  const mod = await import(MODELS[key]);
  const Model = mod[obj.kind];
  try {
    new Model(obj).validate();
    results.push({ kind: key, name, errors: [] });
  } catch (err) {
    const details = err && err.errors ? err.errors.map((e) => `${e.instancePath || "/"} ${e.message}`) : [String(err)];
    results.push({ kind: key, name, errors: details });
    if (status === 0) status = 1;
  }
}
process.stdout.write(JSON.stringify(results));
process.exit(status);
