// Package configs holds the runtime settings of sluice: where the NATS
// server is (or that an embedded one is wanted), where the embedded server
// stores its data, how to log, and how to authenticate to NATS.
//
// Settings come, from highest to lowest precedence, from command-line flags
// bound into the viper instance, SLUICE_* environment variables, a YAML
// config file and defaults:
//
//	v := configs.NewViper()
//	_ = v.BindPFlag("nats_url", flags.Lookup("nats"))
//	s, err := configs.Load(v, "") // reads ./sluice.yaml if it exists
//
// Every key has an environment variable: the key upper-cased with "." as
// "_", prefixed by SLUICE_ (nats_url is SLUICE_NATS_URL, nats.user is
// SLUICE_NATS_USER). A config file looks like this:
//
//	nats_url: nats://nats-1:4222,nats://nats-2:4222
//	log_level: debug
//	log_format: json
//	nats:
//	  creds_file: /etc/sluice/user.creds
//	  tls_ca: /etc/sluice/ca.pem
//
// The package uses its own viper instances, never viper's global one.
package configs
