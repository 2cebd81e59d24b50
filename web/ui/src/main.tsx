/**
 * @module web/ui/main
 * Entry point of the lineage explorer bundle.
 */
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './App.js';
import { adoptTokenFromHash } from './api.js';
import './styles.css';

adoptTokenFromHash();
createRoot(document.getElementById('root')!).render(<StrictMode><App /></StrictMode>);
