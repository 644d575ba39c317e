# A workspace without any provider: a persistent "home" that survives stop
# and start, and a "vm" that only exists while the workspace runs. The daemon
# sets TF_VAR_coder_workspace_* for every build.

variable "coder_workspace_transition" {
  type    = string
  default = "start"
}

variable "coder_workspace_name" {
  type    = string
  default = "dev"
}

variable "destroy_marker" {
  type        = string
  default     = ""
  description = "If set, destroying the home writes this file (proves destroy-time provisioners ran)."
}

resource "terraform_data" "home" {
  input = var.destroy_marker

  provisioner "local-exec" {
    command = "echo creating home volume"
  }

  provisioner "local-exec" {
    when    = destroy
    command = "if [ -n \"${self.input}\" ]; then echo destroyed > \"${self.input}\"; fi; echo home volume destroyed"
  }
}

resource "terraform_data" "vm" {
  count = var.coder_workspace_transition == "start" ? 1 : 0
  input = var.coder_workspace_name

  provisioner "local-exec" {
    command = "echo booting ${self.input}; echo vm ready"
  }
}

resource "terraform_data" "dotfiles" {
  count = var.coder_workspace_transition == "start" ? 1 : 0
  input = "v2"

  provisioner "local-exec" {
    command = "echo installing dotfiles for template v2"
  }
}

output "home_id" {
  value = terraform_data.home.id
}
