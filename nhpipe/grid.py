"""The model grid: the one home of the patch size and the physical pixel.

Training regions are 128 x 128 pixels 3.33 pc wide (0.026 pc per pixel, as in Ribeiro &
Hily-Blant); a trained model stores its pixel size in its card, and these are the values
the simulations, the tiling and the networks share.
"""

#: Side of a patch (training region, inference tile) in model pixels.
PATCH = 128

#: Model pixel (and simulation cell) size in pc: 3.33 pc over 128 pixels.
PIXEL_PC = 3.33 / PATCH
