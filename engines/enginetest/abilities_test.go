package enginetest_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/enginetest"
)

// Fakes: only their method sets matter to CheckAbilities.
type (
	engine      struct{ engines.Engine }
	builder     struct{ engines.SandboxBuilder }
	sandbox     struct{ engines.Sandbox }
	hostBuilder struct{ builder }
	hostEngine  struct{ engine }
)

func (hostBuilder) AddHostName(context.Context, string) (netip.Addr, error) { return netip.Addr{}, nil }
func (hostEngine) HostAddress(context.Context) (netip.Addr, error)          { return netip.Addr{}, nil }

// An engine declaring an ability its types do not implement fails the
// check, naming the ability and its interface.
func TestDeclaredButNotImplemented(t *testing.T) {
	err := enginetest.CheckAbilities([]engines.Ability{engines.AbilityHostName, engines.AbilityVolumes}, engine{}, hostBuilder{}, sandbox{})
	require.ErrorContains(t, err, `declares ability "volumes" but does not implement engines.VolumeBuilder`)
	require.NotContains(t, err.Error(), `"hostname"`)
}

func TestImplementedButNotDeclared(t *testing.T) {
	err := enginetest.CheckAbilities(nil, hostEngine{}, builder{}, sandbox{})
	require.ErrorContains(t, err, `implements engines.HostAddresser but does not declare ability "host-address"`)
}

func TestUnknownAbility(t *testing.T) {
	err := enginetest.CheckAbilities([]engines.Ability{"env"}, engine{}, builder{}, sandbox{})
	require.ErrorContains(t, err, `declares "env", which is not an ability`)
}

func TestAbilitiesMatch(t *testing.T) {
	require.NoError(t, enginetest.CheckAbilities(nil, engine{}, builder{}, sandbox{}))
	require.NoError(t, enginetest.CheckAbilities([]engines.Ability{engines.AbilityHostName, engines.AbilityHostAddress}, hostEngine{}, hostBuilder{}, sandbox{}))
}

// The schemas' engines declare only known abilities.
func TestSchemaAbilities(t *testing.T) {
	require.Equal(t, []engines.Ability{engines.AbilityHostAddress, engines.AbilityHostName, engines.AbilityImageInfo,
		engines.AbilityInteractiveShell, engines.AbilitySandboxAddress, engines.AbilityVolumes},
		enginetest.SchemaAbilities(t, "container"))
	require.Equal(t, []engines.Ability{engines.AbilityInteractiveShell}, enginetest.SchemaAbilities(t, "native"))
}
