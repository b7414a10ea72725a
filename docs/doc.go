// Package docs holds the project's documentation (Markdown beside the code it
// describes) and the test that keeps its links true.
package docs
