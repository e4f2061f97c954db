// Validate custom resources against the CRD schemas shipped by @kubernetes-models (KEDA, the
// Prometheus Operator). Input: a JSON array of rendered resources on stdin. Output: one line per
// resource, "passed KIND/NAME" or "failed KIND/NAME: reason", or "skipped KIND/NAME" for kinds
// without a schema here; the exit code is 1 when any resource failed.
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";

const MODELS = { ScaledObject, PrometheusRule, ServiceMonitor, PodMonitor };

let input = "";
for await (const chunk of process.stdin) input += chunk;
let failed = 0;
for (const resource of JSON.parse(input)) {
  const label = `${resource.kind}/${resource.metadata?.name}`;
  const Model = MODELS[resource.kind];
  if (!Model || Model.apiVersion !== resource.apiVersion) {
    console.log(`skipped ${label}`);
    continue;
  }
  try {
    new Model(resource).validate();
    console.log(`passed ${label}`);
  } catch (error) {
    failed += 1;
    console.log(`failed ${label}: ${error.message.replace(/\s+/g, " ")}`);
  }
}
process.exit(failed ? 1 : 0);
