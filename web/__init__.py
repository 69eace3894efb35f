"""Static files of the Video Station PWA (shipped in the wheel as ``appliance.web``)."""
