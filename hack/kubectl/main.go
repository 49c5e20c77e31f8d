// Command kubectl is the kubectl CLI of the pinned Kubernetes release, built from its published
// staging modules so that the test suite does not depend on a kubectl the machine happens to have.
// It runs kubectl's root command as Kubernetes' own cmd/kubectl does.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"

	// Client auth plugins (exec, OIDC), as in the released kubectl.
	_ "k8s.io/client-go/plugin/pkg/client/auth"
)

func main() {
	// The verbosity flag is read before the command is built, so klog logs at that level while
	// kubectl looks up plugins and reads .kuberc.
	logs.GlogSetter(cmd.GetLogVerbosity(os.Args)) //nolint:errcheck
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		util.CheckErr(err)
	}
}
