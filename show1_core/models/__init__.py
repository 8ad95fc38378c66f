"""The Show-1 UNet3D family (`unet3d`) and its layers (`blocks`, `attention`).

One config-driven class builds all four Show-1 UNets from their `unet/config.json`; IF-II's 2D UNet
and the sr2 VAE are diffusers' own classes, which compute exactly what the published code runs.
"""
