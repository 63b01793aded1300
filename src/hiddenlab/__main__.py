from hiddenlab.cli import main

raise SystemExit(main())
