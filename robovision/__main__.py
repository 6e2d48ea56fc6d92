from robovision.cli import main

raise SystemExit(main())
