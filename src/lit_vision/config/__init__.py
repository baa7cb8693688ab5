"""Config plumbing: OmegaConf resolvers, the Trainer schema, composing conf/ in-process, override quoting."""
