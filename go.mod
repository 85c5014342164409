module github.com/kilnhealth/kiln

go 1.26.8
