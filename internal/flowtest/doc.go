// Package flowtest holds end-to-end tests of the pipeline assembled from
// its real parts in one process: webhook source → publisher → embedded
// JetStream → dispatcher with filter → HTTP sink → httptest receiver.
// It has no non-test code.
package flowtest
