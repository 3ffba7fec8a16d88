// Package interop holds contract tests of the taskcluster client against
// the embedded Queue (taskcluster/localqueue) over real HTTP with Hawk. It
// is a separate package so that the client's own tests do not depend on
// the embedded Queue building.
package interop
