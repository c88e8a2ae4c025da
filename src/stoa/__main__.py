from stoa.cli.main import main

main()
