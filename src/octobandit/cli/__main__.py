from octobandit.cli import main

main()
