"""The models of the cascade, each built from the config that ships with its weights and from the
layers of a layer set (`ops`): the UNets (`unet`, with `blocks` and `attention`), the VAE (`vae`)
and the text encoders (`t5`, `clip`). Parameter names are the checkpoints' own.
"""
