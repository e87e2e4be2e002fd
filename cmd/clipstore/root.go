package main

import (
	"github.com/spf13/cobra"
)

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "clipstore",
		Short:         "A distributed object store for fleet sensor video",
		SilenceUsage:  true,
		SilenceErrors: true, // main prints the one error line
	}
	root.AddCommand(newStorageCommand(), newMetaCommand(), newDevCommand(), newS3Command())
	co := &clientOptions{}
	for _, c := range []*cobra.Command{newMbCommand(co), newRbCommand(co), newPutCommand(co), newGetCommand(co),
		newLsCommand(co), newFindCommand(co), newDatasetCommand(co), newPlanCommand(co), newStatCommand(co), newRmCommand(co), newClusterCommand(co), newAdminCommand(co), newBenchCommand(co)} {
		co.AddFlags(c)
		root.AddCommand(c)
	}
	return root
}
