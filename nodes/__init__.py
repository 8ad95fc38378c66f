"""ComfyUI nodes of the pack: thin glue over show1_core."""

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}
