// Package helm holds the tests of the knowingnode Helm chart in
// deploy/helm/knowingnode: they render it with the pinned helm
// (tools/helm.mod) and hold it to the kustomize overlays in deploy/, object
// by object and field by field, so the two ways to install cannot drift.
package helm
