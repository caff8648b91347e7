"""Your own images: folders of labelled images to record files (convert.py,
`make convert`), and a trained run's classes for image files (predict.py,
`make predict`)."""
