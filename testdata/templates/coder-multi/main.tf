# Agents placed by the graph: several agents on several resources, an agent
# in a module, an agent reached only through a local, and a tie between two
# resources at the same distance. Needs the test provider.
terraform {
  required_providers {
    coder = { source = "coder/coder" }
  }
}

resource "coder_agent" "dev" {
  os   = "linux"
  arch = "amd64"
}

resource "coder_agent" "db" {
  os   = "linux"
  arch = "arm64"
  auth = "aws-instance-identity"
}

resource "coder_agent" "far" {
  os   = "windows"
  arch = "amd64"
}

resource "coder_agent" "tie" {
  os   = "linux"
  arch = "amd64"
}

# dev runs on dev_vm; disk depends on dev only through dev_vm (farther).
resource "terraform_data" "dev_vm" {
  input = coder_agent.dev.init_script
}

resource "terraform_data" "disk" {
  input = terraform_data.dev_vm.output
}

resource "terraform_data" "db_vm" {
  input = coder_agent.db.token
}

# far is reached only through a local.
locals {
  far_boot = "run ${coder_agent.far.init_script}"
}

resource "terraform_data" "far_vm" {
  input = local.far_boot
}

# Two resources at the same distance: the smaller address wins.
resource "terraform_data" "tie_b" {
  input = coder_agent.tie.token
}

resource "terraform_data" "tie_a" {
  input = coder_agent.tie.token
}

module "box" {
  source = "./box"
}

# Uses the module's agent through an output: farther than the module's own VM.
resource "terraform_data" "outer" {
  input = module.box.token
}

# db authenticates by its instance id instead of a token (its auth says so).
resource "coder_agent_instance" "db" {
  agent_id    = coder_agent.db.id
  instance_id = terraform_data.db_vm.id
}
