"""The only code that changes state: one public function per action, keyword-only arguments."""
