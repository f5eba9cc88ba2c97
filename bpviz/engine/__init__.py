"""The Qt-free engine: observe a model's layers, record each step, name what is wrong."""
