// Package lease holds keys of a KV bucket as leases: created only if
// absent, renewed with a revision check, gone when not renewed within the
// bucket's TTL so that another process may take them. Cluster workers
// own sources with them and processes own partitions with them.
package lease
