// Validates custom resources (YAML converted to JSON by the caller) against the CRD schemas of
// KEDA and the Prometheus Operator, as compiled by kubernetes-models-ts (npm: @kubernetes-models/keda,
// @kubernetes-models/prometheus-operator). Input: a JSON list of objects on stdin.
// Output: one JSON line per object: {"kind": ..., "ok": true} or {"kind": ..., "ok": false, "error": "..."}.
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";

const models = { "keda.sh/v1alpha1/ScaledObject": ScaledObject, "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor };
let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  for (const doc of JSON.parse(input)) {
    const key = `${doc.apiVersion}/${doc.kind}`;
    const Model = models[key];
    if (!Model) { console.log(JSON.stringify({ kind: key, ok: false, error: "no validator for " + key })); continue; }
    try {
      new Model(doc).validate();
      console.log(JSON.stringify({ kind: key, ok: true }));
    } catch (err) {
      console.log(JSON.stringify({ kind: key, ok: false, error: String(err && (err.message || err)) }));
    }
  }
});
