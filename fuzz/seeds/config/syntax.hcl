# hash comment
// slash comment
/* block
   comment */
agent_address = <<EOT
/tmp/heredoc.sock
EOT
cert_dir = <<-EOT
    indented
    EOT
hint = "esc \t \" \\ \u00e9 \U0001F600 ${not_interpolated}"
svid_file_name = 'single'
health_checks = { bind_port = -1, liveness_path = "" }
health_checks { bind_port = 99999 }
cmd_args = ["x", 1, true, null]
renew_signal = 1
daemon_mode = 1.5e3
svid_fil_name = "typo"
jwt_svids { jwt_audience = "a" }
