// Package scope is the scope vxnet's drivers report to Docker, which also
// decides how they behave: Local on standalone hosts, where every host's
// Docker asks for its own networks and addresses, and Global in a swarm,
// where the manager allocates for the whole cluster and the nodes repeat
// its requests (see ipam's swarm.go and the driver's peer selection). A
// package of its own because the driver, the IPAM and the command line
// all decide on it and none of them imports another for that.
package scope

import "fmt"

// Scope is a driver scope, as in Docker's capabilities answer.
type Scope string

// The scopes Docker knows.
const (
	Local  Scope = "local"
	Global Scope = "global"
)

// Parse accepts "local" and "global".
func Parse(s string) (Scope, error) {
	switch Scope(s) {
	case Local, Global:
		return Scope(s), nil
	}
	return "", fmt.Errorf("scope %q: want %s or %s", s, Local, Global)
}

// Swarm tells whether s is a swarm's scope.
func (s Scope) Swarm() bool { return s == Global }
