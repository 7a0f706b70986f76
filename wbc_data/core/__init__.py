"""What every stage shares about the data: the manifest schema, stage result files and the joined view, the
workspace and its named roots, the 13-class taxonomy and label maps, row selection, errors, recipe loading and the
compute device. Imports nothing from the stages or the CLI."""
