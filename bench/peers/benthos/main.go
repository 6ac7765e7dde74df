// Command benthos is a minimal Benthos, built from
// github.com/redpanda-data/benthos/v4 with only its pure and io
// components: the peer that bench's peers group runs the ETL job on.
//
//	benthos -c job.yaml
//
// It takes Benthos's own command line (service.RunCLI), so any config that
// uses only pure and io components runs.
package main

import (
	"context"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"
)

func main() {
	service.RunCLI(context.Background())
}
