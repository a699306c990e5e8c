from tritonize.cli.main import main

main()
