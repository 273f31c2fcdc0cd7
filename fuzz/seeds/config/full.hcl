agent_address = "unix:///tmp/agent.sock"
cert_dir = "certs"
svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "svid_bundle.pem"
credential_bundle_file_name = "credentials.pem"
trust_bundles_dir = "bundles"
add_intermediates_to_bundle = true
include_federated_domains = true
omit_expired = "true"
hint = "internal"
jwt_svids = [
  { jwt_audience = "aud", jwt_extra_audiences = ["b", "c"], jwt_svid_file_name = "a.token" },
  {
    jwt_audience = "other"
    jwt_svid_file_name = "b.token"
  },
]
jwt_bundle_file_name = "jwt_bundle.json"
cert_file_mode = 0644
key_file_mode = "0600"
jwt_bundle_file_mode = 384
jwt_svid_file_mode = 0x180
daemon_mode = true
cmd = "/usr/sbin/nginx"
cmd_args = "-g \"daemon off;\" -c \"\"\"q\"\"\""
pid_file_name = "/run/nginx.pid"
renew_signal = "SIGHUP"
cmd_exit_policy = "restart"
log_level = "debug"
log_format = "json"
oneshot_max_wait = "90s"
health_checks {
  listener_enabled = true
  bind_address = "127.0.0.1"
  bind_port = 8081
  liveness_path = "/live"
  readiness_path = "/ready"
  metrics_path = "/metrics"
  status_path = "/status"
}
