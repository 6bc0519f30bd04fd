module example.com/mixed-go

go 1.21
