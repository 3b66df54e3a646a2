// Package deploy holds no product code. Its tests check the deployment files beside it: the Envoy bootstraps
// against Envoy's API protos, the Kubernetes and Istio manifests against their API types, the kustomize render,
// docker-compose, the Dockerfile and the nginx front proxy.
package deploy
