terraform {
  required_providers {
    coder = { source = "coder/coder" }
  }
}

resource "coder_agent" "boxed" {
  os   = "linux"
  arch = "amd64"
}

resource "terraform_data" "inner" {
  input = coder_agent.boxed.token
}

output "token" {
  value     = coder_agent.boxed.token
  sensitive = true
}
