# Coder features that are read at import and served as Coder serves them:
# external auth, presets, legacy agent scripts, app display-name fallbacks
# and open_in. Used by tests/it/compat.rs.

terraform {
  required_providers {
    coder = { source = "coder/coder" }
  }
}

data "coder_workspace" "me" {}

data "coder_parameter" "size" {
  name    = "size"
  type    = "string"
  default = "s"
  mutable = true
}

data "coder_external_auth" "github" {
  id       = "github"
  optional = true
}

data "coder_external_auth" "gitlab" {
  id = "gitlab"
}

data "coder_workspace_preset" "large" {
  name        = "Large"
  description = "for big builds"
  parameters = {
    size = "l"
  }
  prebuilds {
    instances = 1
  }
}

resource "coder_agent" "main" {
  os                      = "linux"
  arch                    = "amd64"
  startup_script          = "echo up"
  startup_script_behavior = "blocking"
  shutdown_script         = "echo down"
}

resource "terraform_data" "vm" {
  count = data.coder_workspace.me.start_count
  input = coder_agent.main.token
}

resource "coder_app" "named" {
  agent_id = coder_agent.main.id
  slug     = "named"
  name     = "Legacy Name"
  open_in  = "tab"
}

resource "coder_app" "bare" {
  agent_id = coder_agent.main.id
  slug     = "bare"
}

resource "coder_metadata" "vm" {
  count       = data.coder_workspace.me.start_count
  resource_id = terraform_data.vm[0].id
  daily_cost  = 3
}

# A second costed resource: the build's daily_cost is the sum.
resource "terraform_data" "disk" {
  input = "disk"
}

resource "coder_metadata" "disk" {
  resource_id = terraform_data.disk.id
  daily_cost  = 2
}
