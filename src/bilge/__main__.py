from bilge.cli import main

main()
