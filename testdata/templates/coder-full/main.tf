# A Coder-style template: one VM with an agent, two apps, a script, an env
# and metadata (one item sensitive), two parameters and two variables.
# Needs the test provider (scripts/setup-test-provider).
terraform {
  required_providers {
    coder = { source = "coder/coder" }
  }
}

variable "region" {
  type        = string
  description = "Where the workspace runs"
  default     = "eu-west"
}

variable "api_token" {
  type      = string
  sensitive = true
}

data "coder_workspace" "me" {}

data "coder_parameter" "cpu" {
  name         = "cpu"
  display_name = "CPU cores"
  type         = "number"
  default      = "2"
  mutable      = true
  order        = 1
  validation {
    min = 1
    max = 8
  }
}

data "coder_parameter" "image" {
  name    = "image"
  type    = "string"
  mutable = false
  order   = 2
  option {
    name  = "Ubuntu"
    value = "ubuntu"
  }
  option {
    name  = "Debian"
    value = "debian"
  }
}

resource "coder_agent" "main" {
  os                  = "linux"
  arch                = "amd64"
  dir                 = "/home/coder"
  env                 = { EDITOR = "vim" }
  connection_timeout  = 300
  troubleshooting_url = "https://example.com/help"
  metadata {
    key          = "load"
    display_name = "Load"
    script       = "cat /proc/loadavg"
    interval     = 10
  }
}

resource "coder_app" "code" {
  agent_id     = coder_agent.main.id
  slug         = "code"
  display_name = "Code Server"
  url          = "http://localhost:8080"
  share        = "authenticated"
  subdomain    = true
  order        = 1
  healthcheck {
    url       = "http://localhost:8080/healthz"
    interval  = 5
    threshold = 6
  }
}

resource "coder_app" "docs" {
  agent_id     = coder_agent.main.id
  slug         = "docs"
  display_name = "Docs"
  url          = "https://example.com/docs"
  external     = true
  order        = 2
}

resource "coder_script" "boot" {
  agent_id           = coder_agent.main.id
  display_name       = "Boot"
  script             = "echo booting"
  run_on_start       = true
  start_blocks_login = true
}

resource "coder_env" "region" {
  agent_id = coder_agent.main.id
  name     = "REGION"
  value    = var.region
}

# Kept while the workspace is stopped.
resource "terraform_data" "home" {
  input = "home of ${data.coder_workspace.me.name}"
}

resource "terraform_data" "vm" {
  count = data.coder_workspace.me.start_count
  input = {
    init  = coder_agent.main.init_script
    image = data.coder_parameter.image.value
    cpu   = data.coder_parameter.cpu.value
  }
}

resource "coder_metadata" "vm" {
  count       = data.coder_workspace.me.start_count
  resource_id = terraform_data.vm[0].id
  icon        = "/icon/vm.svg"
  daily_cost  = 7
  item {
    key   = "region"
    value = var.region
  }
  item {
    key       = "api token"
    value     = var.api_token
    sensitive = true
  }
}
