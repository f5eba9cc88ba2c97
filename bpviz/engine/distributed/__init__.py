"""bpviz under torch.distributed: each rank measures its own layers, one collective a step combines them."""
