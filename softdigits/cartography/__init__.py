"""Dataset cartography (Swayamdipta et al. 2020), in two steps with a Parquet contract each:
`train` (torch: training dynamics per seed, epoch and image) and `maps` (numpy: the data
map, its regions and the acceptance check of their shares)."""
