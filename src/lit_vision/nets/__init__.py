"""Plain torch.nn.Modules (usable without Lightning): MLPs, CNNs, ResNets, UNets, backbone factories."""
