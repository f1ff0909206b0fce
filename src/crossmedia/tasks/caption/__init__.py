"""Image captioning: Up-Down and X-LAN decoders trained with XE, SCST (Rennie 2017) and self-critical
n-step training (Gao 2019); CIDEr-D as reward and pycocoevalcap evaluation."""
