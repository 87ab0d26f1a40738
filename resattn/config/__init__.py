"""The run config: composing the config tree, scale resolvers, and the preflight of every job."""
