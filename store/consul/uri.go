package consul

// ParseURI splits consul://host[:port][/prefix] into host:port and the key
// prefix, as Open does (for tools that talk to Consul's API themselves).
func ParseURI(uri string) (addr, prefix string, err error) { return parseURI(uri) }
