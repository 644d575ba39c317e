#!/usr/bin/env bash
# End-to-end check of the test coder provider with real Terraform: init,
# plan, plan JSON, plan graph, apply, state JSON, an empty second plan, a
# stop-transition plan, a parameter from the environment, destroy, and a
# coder_agent inside a module. Every Terraform command must succeed within
# 5 seconds (so none hangs on a provider that will not exit).
#
#   testdata/terraform-provider-coder/check.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

TF_CLI_CONFIG_FILE=$(scripts/setup-test-provider)
export TF_CLI_CONFIG_FILE
export CHECKPOINT_DISABLE=1
unset TF_LOG TF_DATA_DIR TF_PLUGIN_CACHE_DIR
terraform=$(scripts/setup-terraform --force)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
passes=0

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}
pass() {
  echo "ok: $*"
  passes=$((passes + 1))
}

# tf DIR NAME ARGS...: runs terraform in DIR, output to $work/NAME.out,
# timed; fails the check on a non-zero exit (or, with -detailed-exitcode,
# on anything but 0) or on taking 5 s or more.
tf() {
  local dir=$1 name=$2
  shift 2
  local start end rc=0
  start=$(date +%s%N)
  (cd "$dir" && "$terraform" "$@" -no-color >"$work/$name.out" 2>&1) || rc=$?
  end=$(date +%s%N)
  local ms=$(((end - start) / 1000000))
  printf '  %-28s %5d ms  exit %d\n' "$name" "$ms" "$rc"
  if ((rc != 0)); then
    fail "terraform $* exited $rc:"
    sed 's/^/    /' "$work/$name.out" >&2
    return 1
  fi
  if ((ms >= 5000)); then
    fail "terraform $* took $ms ms"
  fi
  if grep -qiE 'panic|plugin did not respond|crash' "$work/$name.out"; then
    fail "terraform $* reports a provider crash"
  fi
}

# json FILE PYTHON-EXPRESSION...: each expression, with `d` the parsed
# JSON, must be true.
json() {
  python3 - "$@" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
bad = [e for e in sys.argv[2:] if not eval(e, {"d": d, "res": lambda ms, a: {r["address"]: r for r in ms["resources"]}.get(a)})]
for e in bad:
    print("    false: " + e, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
}

check() {
  local what=$1
  shift
  if json "$@"; then pass "$what"; else fail "$what"; fi
}

tpl="$work/template"
mkdir -p "$tpl"
cat >"$tpl/main.tf" <<'HCL'
terraform {
  required_providers {
    coder = { source = "coder/coder" }
  }
}
data "coder_workspace" "me" {}
data "coder_parameter" "region" {
  name    = "region"
  default = "eu"
  option {
    name  = "EU"
    value = "eu"
  }
  option {
    name  = "US"
    value = "us"
  }
}
resource "coder_agent" "main" {
  os   = "linux"
  arch = "amd64"
  dir  = "/home/coder"
  env  = { A = "b" }
  metadata {
    key          = "cpu"
    display_name = "CPU"
    script       = "top"
    interval     = 10
  }
}
resource "coder_app" "code" {
  agent_id     = coder_agent.main.id
  slug         = "code"
  display_name = "Code"
  url          = "http://localhost:8080"
  healthcheck {
    url       = "http://localhost:8080/healthz"
    interval  = 5
    threshold = 6
  }
}
resource "coder_script" "s" {
  agent_id     = coder_agent.main.id
  display_name = "boot"
  script       = "echo hi"
  run_on_start = true
}
resource "coder_env" "e" {
  agent_id = coder_agent.main.id
  name     = "X"
  value    = "y"
}
resource "terraform_data" "vm" {
  count = data.coder_workspace.me.start_count
  input = coder_agent.main.token
}
resource "coder_metadata" "m" {
  count       = data.coder_workspace.me.start_count
  resource_id = terraform_data.vm[0].id
  item {
    key   = "region"
    value = data.coder_parameter.region.value
  }
  item {
    key       = "secret"
    value     = "s3cr3t"
    sensitive = true
  }
}
HCL

echo "template with coder_* resources:"
export CODER_WORKSPACE_TRANSITION=start
tf "$tpl" init init -input=false
tf "$tpl" plan plan -input=false -out=p
tf "$tpl" show-plan show -json p
cp "$work/show-plan.out" "$work/plan.json"
check "plan: agent id and token unknown, data sources read" "$work/plan.json" \
  '"id" not in res(d["planned_values"]["root_module"], "coder_agent.main")["values"]' \
  '"token" not in res(d["planned_values"]["root_module"], "coder_agent.main")["values"]' \
  '[c for c in d["resource_changes"] if c["address"] == "coder_agent.main"][0]["change"]["after_unknown"]["id"] is True' \
  '[c for c in d["resource_changes"] if c["address"] == "coder_agent.main"][0]["change"]["after_unknown"]["token"] is True' \
  'res(d["planned_values"]["root_module"], "coder_agent.main")["values"]["auth"] == "token"' \
  'res(d["planned_values"]["root_module"], "coder_agent.main")["values"]["connection_timeout"] == 120' \
  'res(d["prior_state"]["values"]["root_module"], "data.coder_workspace.me")["values"]["start_count"] == 1' \
  'res(d["prior_state"]["values"]["root_module"], "data.coder_workspace.me")["values"]["transition"] == "start"' \
  'res(d["prior_state"]["values"]["root_module"], "data.coder_parameter.region")["values"]["value"] == "eu"' \
  'res(d["prior_state"]["values"]["root_module"], "data.coder_parameter.region")["values"]["optional"] is True'

tf "$tpl" graph graph -type=plan
if grep -qF '"[root] terraform_data.vm (expand)" -> "[root] coder_agent.main (expand)"' "$work/graph.out"; then
  pass "graph: terraform_data.vm depends on coder_agent.main"
else
  fail "graph: no edge from terraform_data.vm to coder_agent.main"
fi

tf "$tpl" apply apply -input=false p
tf "$tpl" show-state show -json
cp "$work/show-state.out" "$work/state.json"
check "state: agent has id and token, app points at it" "$work/state.json" \
  'len(res(d["values"]["root_module"], "coder_agent.main")["values"]["id"]) == 36' \
  'len(res(d["values"]["root_module"], "coder_agent.main")["values"]["token"]) == 36' \
  'res(d["values"]["root_module"], "coder_agent.main")["values"]["init_script"]' \
  'res(d["values"]["root_module"], "coder_app.code")["values"]["agent_id"] == res(d["values"]["root_module"], "coder_agent.main")["values"]["id"]' \
  'res(d["values"]["root_module"], "coder_app.code")["values"]["share"] == "owner"' \
  'res(d["values"]["root_module"], "terraform_data.vm[0]")["values"]["input"] == res(d["values"]["root_module"], "coder_agent.main")["values"]["token"]' \
  '[i["is_null"] for i in res(d["values"]["root_module"], "coder_metadata.m[0]")["values"]["item"]] == [False, False]'

tf "$tpl" replan plan -input=false -detailed-exitcode && pass "second plan: no changes"

CODER_WORKSPACE_TRANSITION=stop tf "$tpl" plan-stop plan -input=false -out=stop
tf "$tpl" show-stop show -json stop
cp "$work/show-stop.out" "$work/stop.json"
check "stop plan: deletes vm and metadata only" "$work/stop.json" \
  'sorted(c["address"] for c in d["resource_changes"] if c["change"]["actions"] == ["delete"]) == ["coder_metadata.m[0]", "terraform_data.vm[0]"]' \
  'all(c["change"]["actions"] in (["no-op"], ["delete"]) for c in d["resource_changes"])'

param_var="CODER_PARAMETER_$(printf region | sha256sum | cut -d' ' -f1)"
export "$param_var=us"
tf "$tpl" plan-param plan -input=false -out=param
unset "$param_var"
tf "$tpl" show-param show -json param
cp "$work/show-param.out" "$work/param.json"
check "parameter value from $param_var" "$work/param.json" \
  'res(d["prior_state"]["values"]["root_module"], "data.coder_parameter.region")["values"]["value"] == "us"' \
  '[c for c in d["resource_changes"] if c["address"] == "coder_metadata.m[0]"][0]["change"]["actions"] == ["update"]'

tf "$tpl" destroy destroy -auto-approve -input=false
tf "$tpl" show-destroyed show -json
cp "$work/show-destroyed.out" "$work/destroyed.json"
check "destroy: nothing left" "$work/destroyed.json" \
  'not d.get("values", {}).get("root_module", {}).get("resources")'

echo "template with a coder_agent in a module:"
mod="$work/module"
mkdir -p "$mod/modules/agent"
cat >"$mod/modules/agent/main.tf" <<'HCL'
terraform {
  required_providers {
    coder = { source = "coder/coder" }
  }
}
variable "os" {
  type = string
}
resource "coder_agent" "dev" {
  os   = var.os
  arch = "amd64"
  display_apps {
    vscode = false
  }
}
resource "coder_app" "term" {
  agent_id = coder_agent.dev.id
  slug     = "term"
  command  = "bash"
}
output "token" {
  value     = coder_agent.dev.token
  sensitive = true
}
HCL
cat >"$mod/main.tf" <<'HCL'
terraform {
  required_providers {
    coder = { source = "coder/coder" }
  }
}
data "coder_workspace_owner" "me" {}
data "coder_provisioner" "me" {}
module "agent" {
  source = "./modules/agent"
  os     = data.coder_provisioner.me.os
}
resource "terraform_data" "vm" {
  input = module.agent.token
}
HCL
tf "$mod" mod-init init -input=false
tf "$mod" mod-apply apply -auto-approve -input=false
tf "$mod" mod-state show -json
cp "$work/mod-state.out" "$work/mod.json"
check "module: agent applied with its display_apps defaults" "$work/mod.json" \
  'res(d["values"]["root_module"]["child_modules"][0], "module.agent.coder_agent.dev")["values"]["display_apps"] == [{"vscode": False, "vscode_insiders": False, "web_terminal": True, "ssh_helper": True, "port_forwarding_helper": True}]' \
  'res(d["values"]["root_module"]["child_modules"][0], "module.agent.coder_app.term")["values"]["agent_id"] == res(d["values"]["root_module"]["child_modules"][0], "module.agent.coder_agent.dev")["values"]["id"]' \
  'res(d["values"]["root_module"], "data.coder_workspace_owner.me")["values"]["groups"] == []'
tf "$mod" mod-replan plan -input=false -detailed-exitcode && pass "module: second plan has no changes"
tf "$mod" mod-destroy destroy -auto-approve -input=false

echo "$passes passed, $failures failed"
((failures == 0))
