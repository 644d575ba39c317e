# A build that takes a minute and leaves a background grandchild behind, for
# cancel tests: nothing of it may survive a cancel.

resource "terraform_data" "slow" {
  provisioner "local-exec" {
    command = "echo slow step started; (sleep 300 &); sleep 60; echo slow step finished"
  }
}
