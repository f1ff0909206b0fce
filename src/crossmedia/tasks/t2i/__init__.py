"""Text-to-image: GAN-INT-CLS with conditioning augmentation (StackGAN) and the text-to-image branch of GXN."""
