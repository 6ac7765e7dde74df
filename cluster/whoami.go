package cluster

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluicehq/sluice/internal/schema"
)

// whoAmITimeout bounds the question to the server: one without a system
// account, or older than 2.10, has no one to answer it.
const whoAmITimeout = 2 * time.Second

// whoAmI returns the NATS user of nc and its account, as the server knows
// them ([schema.UserInfoSubject]), else the user name or NKey nc
// connected with. A token is never returned: a token's user is "token".
// The default account ("$G") is returned as "".
func whoAmI(ctx context.Context, nc *nats.Conn) (user, account string) {
	ctx, cancel := context.WithTimeout(ctx, whoAmITimeout)
	defer cancel()
	if msg, err := nc.RequestWithContext(ctx, schema.UserInfoSubject, nil); err == nil {
		var resp struct {
			Data *struct {
				User        string `json:"user"`
				Account     string `json:"account"`
				AccountName string `json:"account_name"`
			} `json:"data"`
		}
		if json.Unmarshal(msg.Data, &resp) == nil && resp.Data != nil && resp.Data.User != "" {
			user, account = resp.Data.User, resp.Data.Account
			if resp.Data.AccountName != "" {
				account = resp.Data.AccountName
			}
		}
	}
	if user == "" {
		switch {
		case nc.Opts.User != "":
			user = nc.Opts.User
		case nc.Opts.Nkey != "":
			user = nc.Opts.Nkey
		}
	}
	if user == "[REDACTED]" || nc.Opts.Token != "" && user == nc.Opts.Token {
		user = "token"
	}
	if account == "$G" {
		account = ""
	}
	return user, account
}
